"""bidenv: a fast Gymnasium simulator of multi-slot ad auctions for auto-bidding research."""

__version__ = "0.1.0"
