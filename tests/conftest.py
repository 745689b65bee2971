"""Shared pytest configuration (the helpers are imported as ``tests.helpers``)."""
