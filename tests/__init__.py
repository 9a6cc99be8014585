"""Tests for tap-smartflo."""
