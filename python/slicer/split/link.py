"""The ε-outage link model of the paper's Eq. 1 and parsers for budget strings.

    L_c = B / R · ⌈ln ε / ln P_o(R)⌉ + ζ,      P_o(R) = 1 − exp(−(2^{R/W} − 1) / γ)

A packet of B bits sent at rate R fails with outage probability P_o; it is resent until the
probability that every try failed drops below ε, which takes ⌈ln ε / ln P_o⌉ tries.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

DEFAULT_EPS = 1e-3
DEFAULT_BANDWIDTH_HZ = 10e6
DEFAULT_SNR = 10.0


@dataclass(frozen=True)
class Link:
    """A wireless link: rate R (bit/s), bandwidth W (Hz), mean SNR γ (linear), outage target ε."""

    rate_bps: float
    bandwidth_hz: float = DEFAULT_BANDWIDTH_HZ
    snr: float = DEFAULT_SNR
    eps: float = DEFAULT_EPS

    def __post_init__(self) -> None:
        if not self.rate_bps > 0:
            raise ValueError(f"rate must be > 0 bit/s, got {self.rate_bps}")
        if not self.bandwidth_hz > 0:
            raise ValueError(f"bandwidth must be > 0 Hz, got {self.bandwidth_hz}")
        if not self.snr > 0:
            raise ValueError(f"SNR must be > 0 (linear), got {self.snr}")
        if not 0 < self.eps < 1:
            raise ValueError(f"eps must be in (0, 1), got {self.eps}")

    @property
    def outage_probability(self) -> float:
        """P_o(R) of Eq. 1."""
        exponent = self.rate_bps / self.bandwidth_hz
        if exponent > 1000:  # 2^{R/W} overflows: the link is always in outage
            return 1.0
        return -math.expm1(-math.expm1(exponent * math.log(2)) / self.snr)

    @property
    def transmissions(self) -> float:
        """⌈ln ε / ln P_o⌉: tries needed so that all fail with probability < ε (inf if P_o = 1)."""
        p = self.outage_probability
        if p <= 0.0:
            return 1.0
        if p >= 1.0:
            return math.inf
        return float(max(1, math.ceil(math.log(self.eps) / math.log(p))))

    def transmit_seconds(self, payload_bytes: float) -> float:
        """B/R · ⌈ln ε / ln P_o⌉ for a payload of ``payload_bytes`` bytes."""
        return 8.0 * payload_bytes / self.rate_bps * self.transmissions

    def latency_seconds(self, payload_bytes: float, encode_seconds: float) -> float:
        """L_c of Eq. 1: transmission plus encoding time ζ."""
        return self.transmit_seconds(payload_bytes) + encode_seconds

    def to_json(self) -> dict:
        return {
            "rate_bps": self.rate_bps,
            "bandwidth_hz": self.bandwidth_hz,
            "snr": self.snr,
            "eps": self.eps,
            "outage_probability": self.outage_probability,
            "transmissions": self.transmissions,
        }


_NUMBER = r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*"


def _parse(text: str | float, units: dict[str, float], what: str, default_unit: str) -> float:
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(_NUMBER + r"([A-Za-z/]*)\s*", str(text))
    if not m:
        raise ValueError(f"cannot read {what} {text!r}; write e.g. 12{default_unit}")
    if not m.group(2):
        return float(m.group(1))  # a bare number is in base units (B, s, bit/s, Hz)
    unit = m.group(2)
    key = next((u for u in units if u == unit), None)
    if key is None:
        key = next((u for u in units if u.lower() == unit.lower()), None)
    if key is None:
        raise ValueError(f"unknown unit {unit!r} in {what} {text!r}; use one of {', '.join(units)}")
    return float(m.group(1)) * units[key]


def parse_bytes(text: str | float) -> float:
    """'64MB' → 64e6; binary units (KiB, MiB, GiB) too; a bare number is bytes."""
    units = {
        "B": 1,
        "kB": 1e3,
        "KB": 1e3,
        "MB": 1e6,
        "GB": 1e9,
        "KiB": 1024,
        "MiB": 1024**2,
        "GiB": 1024**3,
    }
    return _parse(text, units, "memory", "MB")


def parse_seconds(text: str | float) -> float:
    """'30ms' → 0.03; units s, ms, us; a bare number is seconds."""
    return _parse(text, {"s": 1, "ms": 1e-3, "us": 1e-6}, "deadline", "ms")


def parse_rate(text: str | float) -> float:
    """'20Mbps' → 2e7 bit/s; units bps, kbps, Mbps, Gbps."""
    units = {"bps": 1, "kbps": 1e3, "Kbps": 1e3, "Mbps": 1e6, "Gbps": 1e9}
    return _parse(text, units, "rate", "Mbps")


def parse_hertz(text: str | float) -> float:
    """'10MHz' → 1e7; units Hz, kHz, MHz, GHz."""
    return _parse(text, {"Hz": 1, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}, "bandwidth", "MHz")


def parse_snr(text: str | float) -> float:
    """Mean SNR γ as a linear ratio; '10' is linear, '10dB' is converted (10 dB → 10)."""
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(_NUMBER + r"(dB)?\s*", str(text), flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"cannot read SNR {text!r}; write e.g. 10 (linear) or 10dB")
    value = float(m.group(1))
    return 10 ** (value / 10) if m.group(2) else value
