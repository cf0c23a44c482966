"""The printed result of bench/mixed.py for one backend: the phases' table, errors, memory and the verdicts."""
from __future__ import annotations

from _mixed_load import CREATE, KINDS, READ, Phase

TARGET_MIXED_VS_READ_ONLY = 0.5  # mixed req/s over read-only req/s, at least
TARGET_READ_P99_MS = 50.0  # the mixed phase's read p99, under
MIB = 1024


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(phases: list[Phase]) -> None:
    print(f"{'phase':<10} {'kind':<7} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for phase in phases:
        for kind in KINDS:
            answered = len(phase.latencies[kind])
            errors = sum(n for (k, _), n in phase.errors.items() if k == kind)
            if answered + errors == 0:
                continue
            print(f"{phase.name:<10} {kind:<7} {answered + errors:>9} {(answered + errors) / phase.seconds:>8.0f} "
                  f"{_ms(phase.percentile_ms(kind, 0.5)):>8} {_ms(phase.percentile_ms(kind, 0.99)):>8} {errors:>7}")
        print(f"{phase.name:<10} {'all':<7} {phase.requests:>9} {phase.rate:>8.0f} {'':>8} {'':>8} "
              f"{sum(phase.errors.values()):>7}   ({phase.seconds:.1f} s)")


def resources(phases: list[Phase]) -> None:
    for phase in phases:
        cpu_ms = phase.gateway_cores * phase.seconds / max(1, phase.requests) * 1000
        print(f"{phase.name:<10} gateway RSS at the end {phase.rss_kib / MIB:.0f} MiB (peak so far "
              f"{phase.peak_kib / MIB:.0f} MiB); gateway CPU {cpu_ms:.2f} ms/request; cores used: gateways "
              f"{phase.gateway_cores:.2f}, load client {phase.client_cores:.2f}, everything else "
              f"{phase.other_cores:.2f}")
    if max(phase.client_cores for phase in phases) > 0.9:
        print("warning: the load client used over 90% of a core: rates may be client-bound")


def errors(phases: list[Phase]) -> int:
    """Prints every error (non-2xx answer or failed request) by phase, kind and status; their count."""
    count = 0
    for phase in phases:
        for (kind, what), n in sorted(phase.errors.items()):
            count += n
            print(f"error: {phase.name} {kind} {what}: {n}x, first answer: {phase.samples[(kind, what)]!r}")
    if count == 0:
        print("errors: none (every answer 2xx)")
    return count


def report(backend: str, processes: int, connections: int, read_only: Phase, mixed: Phase,
           check: str) -> bool:
    """Everything about one backend's run; True when every target is met and nothing failed."""
    print()
    print(f"== {backend} ({processes} gateway process{'es' if processes > 1 else ''}) ==")
    phases = [read_only, mixed]
    table(phases)
    resources(phases)
    error_count = errors(phases)
    print(f"check: {check}")
    ratio = mixed.rate / read_only.rate
    read_p99 = mixed.percentile_ms(READ, 0.99)
    checks: list[tuple[str, str, str, bool | None]] = [  # label, value, target, pass (None: information)
        ("mixed / read-only req/s", f"{ratio:.2f}x", f">= {TARGET_MIXED_VS_READ_ONLY}x",
         ratio >= TARGET_MIXED_VS_READ_ONLY),
        ("mixed: read p99", f"{_ms(read_p99)} ms", f"< {TARGET_READ_P99_MS:g} ms",
         read_p99 is not None and read_p99 < TARGET_READ_P99_MS),
        ("read-only: read p99", f"{_ms(read_only.percentile_ms(READ, 0.99))} ms", "(info)", None),
        ("mixed: create p99", f"{_ms(mixed.percentile_ms(CREATE, 0.99))} ms", "(info)", None),
        # A closed loop of N connections has a mean latency of N / rate (Little's law): the floor a p99 stands on.
        ("mixed: mean latency, connections / req/s", f"{connections / mixed.rate * 1000:.2f} ms", "(info)", None),
        ("mixed / read-only: read p50", _ratio(mixed.percentile_ms(READ, 0.5), read_only.percentile_ms(READ, 0.5)),
         "(info)", None),
        ("errors (non-2xx answers, failed requests)", str(error_count), "= 0", error_count == 0),
        ("created orders all in the history", "yes" if not check.startswith("MISMATCH") else "no", "yes",
         not check.startswith("MISMATCH")),
    ]
    print()
    for label, value, wanted, passed in checks:
        mark = "" if passed is None else ("PASS" if passed else "FAIL")
        print(f"{backend + ':':<12}{label:<44} {value:>10}  {wanted:<9} {mark}")
    return all(passed is not False for *_, passed in checks)


def _ratio(top: float | None, bottom: float | None) -> str:
    return "-" if top is None or not bottom else f"{top / bottom:.2f}x"
