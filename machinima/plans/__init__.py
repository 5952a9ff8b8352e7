"""Shipped post plans (``machinima examples copy shot .``); see ``machinima.postplan``."""
