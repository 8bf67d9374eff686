"""Audit reviews: schedules, the report for a period, the sign-off on record.

See docs/reviews.md.
"""
