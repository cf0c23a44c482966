"""Partner Orders Gateway: the application core."""
