"""Queries, by area; every read and write of the database goes through here."""

from app.models import Shop
from app.repo.chat import *  # noqa: F403
from app.repo.merchant import *  # noqa: F403
from app.repo.privacy import *  # noqa: F403
from app.repo.replies import *  # noqa: F403
from app.repo.shops import *  # noqa: F403
from app.repo.stats import *  # noqa: F403
from app.repo.workers import *  # noqa: F403

__all__ = ["Shop"]
