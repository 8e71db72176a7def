"""govern: governs access to an organisation's corporate social media accounts."""

__version__ = "0.1.0"
