"""Vendor readers that normalise source files and feeds into the raw table schemas."""
