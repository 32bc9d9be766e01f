"""HTTP routes, one module per domain; they stay thin and call service functions."""
