"""Plumbing that every floor may use, none of it the book's ideas: argument and data checks
(``checks``), files written atomically and folders locked (``atomic``), and the look of the
figures (``figures``: matplotlib, imported only where a figure is drawn)."""
