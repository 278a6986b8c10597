"""Tests of the azmem command line."""
