"""luodi package."""
