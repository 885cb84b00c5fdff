"""Two models at once: the traffic policy (A/B candidates, shadows) and its admin routes."""
