"""Fixtures: the shared record factory and a fresh SQLite store per test."""

from tests.records import SVC, Make, db_path, make, store

__all__ = ["SVC", "Make", "db_path", "make", "store"]
