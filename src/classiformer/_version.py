"""The package's version, in a module of its own so that modules inside the package (which the
package's ``__init__`` imports) can read it without importing the package back."""

__version__ = "0.1.0"
