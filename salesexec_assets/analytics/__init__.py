"""The lead-funnel analytics layer: SQL models over the report tables, and a daily report.

Each model is one dialect-neutral ``SELECT`` in ``models/<name>.sql`` (named like a dbt
model), read and written only through the warehouse's generic methods (``query``, and a
staged ``write`` that replaces whole partitions), so it runs on every warehouse backend.
"""

from salesexec_assets.analytics.models import ANALYTICS_SCHEMA, MODELS, MODELS_BY_NAME, Model

__all__ = ["ANALYTICS_SCHEMA", "MODELS", "MODELS_BY_NAME", "Model"]
