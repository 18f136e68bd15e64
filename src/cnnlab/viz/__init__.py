"""Pictures of what a network learned: `draw` makes the figures, `pictures` decides what to draw and when."""
from .draw import (confusion_figure, denormalise, figure, filter_figure, filter_tiles, first_conv, grid,
                   mistake_caption, mistakes_figure, overlay, saliency, saliency_figure, save_png, segmentation_figure)

__all__ = ["confusion_figure", "denormalise", "figure", "filter_figure", "filter_tiles", "first_conv", "grid",
           "mistake_caption", "mistakes_figure", "overlay", "saliency", "saliency_figure", "save_png",
           "segmentation_figure"]
