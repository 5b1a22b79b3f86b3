"""Two SalesExec accounts, one component instance each (``defs/brand_a``, ``defs/brand_b``)."""
