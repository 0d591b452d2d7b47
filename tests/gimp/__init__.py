"""Helpers for the GIMP plug-in tests: the harness and the scripts run inside GIMP."""
