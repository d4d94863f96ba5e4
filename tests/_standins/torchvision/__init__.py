"""A stand-in for torchvision's ``datasets.ImageFolder``, used only where torchvision is absent.

torch is far too large for CI, yet the README and the dataset card tell users to load the
folders layout with ``torchvision.datasets.ImageFolder``. This stand-in follows the real
class's documented file discovery, so a snippet that would fail with torchvision fails
here too: classes are the sorted sub-folders of the root; with ``is_valid_file`` every file
is offered to it by path, otherwise only files with an image extension count; a class
left with no file raises FileNotFoundError unless ``allow_empty=True``; an item is
``(PIL image in RGB, class index)``. Where torchvision is installed the tests use it.
"""
