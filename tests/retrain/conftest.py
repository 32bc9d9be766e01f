"""Retraining tests use the tiny shipped model of tests/conftest.py (``shipped_model_dir``)."""
