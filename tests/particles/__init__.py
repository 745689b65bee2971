"""Tests of the particles validators."""
