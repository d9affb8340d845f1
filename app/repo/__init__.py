"""Queries, by area; every read and write of the database goes through here."""

from app.models import Shop
from app.repo.catalog import *  # noqa: F403
from app.repo.catalog_imports import *  # noqa: F403
from app.repo.catalog_search import *  # noqa: F403
from app.repo.catalog_staging import *  # noqa: F403
from app.repo.chat import *  # noqa: F403
from app.repo.live import *  # noqa: F403
from app.repo.merchant import *  # noqa: F403
from app.repo.privacy import *  # noqa: F403
from app.repo.replies import *  # noqa: F403
from app.repo.rows import *  # noqa: F403
from app.repo.shops import *  # noqa: F403
from app.repo.stats import *  # noqa: F403
from app.repo.team import *  # noqa: F403
from app.repo.workers import *  # noqa: F403

__all__ = ["Shop"]
