"""csa-closure: close the legacy Child Support Agency arrears book, to the penny."""

__version__ = "0.1.0"
