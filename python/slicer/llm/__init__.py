"""Autoregressive split decoding of decoder-only LLMs (paper Eqs. 4–6)."""
