"""Tests that need an NVIDIA GPU; each skips with its reason where the stack is missing."""
