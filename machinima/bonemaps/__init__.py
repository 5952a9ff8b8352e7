"""Shipped bone maps (TOML package data; see ``machinima/bonemap.py`` for the format)."""
