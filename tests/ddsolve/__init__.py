"""Tests of the ddsolve core."""
