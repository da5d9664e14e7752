"""Billing: split the installation's electricity cost between its users."""
