"""Process entry point (`python run.py ...`, the same as `order-gateway ...`)."""
import sys

from gateway.entry import main

if __name__ == "__main__":
    sys.exit(main())
