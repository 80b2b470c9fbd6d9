"""lmk-tf: global-to-local anatomical landmark localization in TensorFlow/Keras.

Implements Noothout et al., "Deep Learning-Based Regression and Classification
for Automatic Landmark Localization in Medical Images", IEEE TMI 39(12), 2020.
"""

__version__ = "0.1.0"
