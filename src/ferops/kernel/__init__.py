"""Kernel: params (strict, typed), the project layout, errors, emotions, atomic file writes.

The bottom layer: it imports no other ferops package."""
