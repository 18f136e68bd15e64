"""Pictures of what a network learned: `draw` makes the images, `pictures` decides what to draw and when."""
from .draw import (confusion_image, denormalise, filter_grid, first_conv, from_pil, grid, misclassified_grid,
                   overlay, saliency, saliency_grid, save_png, to_pil)

__all__ = ["confusion_image", "denormalise", "filter_grid", "first_conv", "from_pil", "grid", "misclassified_grid",
           "overlay", "saliency", "saliency_grid", "save_png", "to_pil"]
