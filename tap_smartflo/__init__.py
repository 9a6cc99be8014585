"""Singer tap for Tata Smartflo."""
