"""Tests of the validation studies."""
