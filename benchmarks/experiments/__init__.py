"""Measured what-ifs for the lead: prototypes of changes, outside the package."""
