"""{{ cookiecutter.description }}"""

from {{ cookiecutter.package_name }}.plugin import {{ cookiecutter.__class_name }}, __version__

__all__ = ["{{ cookiecutter.__class_name }}", "__version__"]
