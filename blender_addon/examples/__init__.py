"""Shipped examples (package data): `machinima examples list`."""
