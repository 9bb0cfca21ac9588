"""A capability without network permission that fetches a page: always denied."""

from symbiont.host import http_get


def fetch_page(url: str) -> str:
    """The text of the web page at url."""
    return http_get(url)
