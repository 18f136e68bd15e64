"""Pictures of what a network learned: `draw` makes the figures, `pictures` decides what to draw and when."""
