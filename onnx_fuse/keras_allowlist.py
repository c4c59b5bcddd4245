"""Names of the classes and functions the Keras loaders resolve from a model config (facts about the pinned
libraries; tests/test_keras_safety.py checks them against the installed ones). Which of them may be loaded is
decided in onnx_fuse/keras_safety.py."""

# Public classes of Keras 3 and tf-keras 2.21 that a model config names: layers, initializers, regularizers,
# constraints, losses, metrics, optimizers and schedules, models, dtype policies; and the names tf-keras' loader
# resolves besides (Functional, the V1/V2 layer spellings, TFOpLambda, SlicingOpLambda).
KERAS_CLASSES = frozenset(
    {
        "AUC", "AWQDTypePolicy", "AbstractRNNCell", "Accuracy", "Activation", "ActivityRegularization", "Adadelta",
        "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D",
        "AdaptiveAveragePooling3D", "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D", "Add",
        "AdditiveAttention", "AlphaDropout", "Attention", "AugMix", "AutoContrast", "Average", "AveragePooling1D",
        "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D", "AvgPool3D", "BatchNormalization",
        "BatchNormalizationV1", "BatchNormalizationV2", "Bidirectional", "BinaryAccuracy", "BinaryCrossentropy",
        "BinaryFocalCrossentropy", "BinaryIoU", "CTC", "CategoricalAccuracy", "CategoricalCrossentropy",
        "CategoricalFocalCrossentropy", "CategoricalGeneralizedCrossEntropy", "CategoricalHinge", "CategoryEncoding",
        "CenterCrop", "Circle", "Concatenate", "ConcordanceCorrelation", "Constant", "Constraint",
        "ContrastLimitedAdaptiveHistogramEqualization", "Conv1D", "Conv1DTranspose", "Conv2D", "Conv2DTranspose",
        "Conv3D", "Conv3DTranspose", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Convolution1D",
        "Convolution1DTranspose", "Convolution2D", "Convolution2DTranspose", "Convolution3D",
        "Convolution3DTranspose", "CosineDecay", "CosineDecayRestarts", "CosineSimilarity", "Cropping1D",
        "Cropping2D", "Cropping3D", "CuDNNGRU", "CuDNNLSTM", "CutMix", "DTypePolicy", "DTypePolicyMap", "Dense",
        "DenseFeatures", "DepthwiseConv1D", "DepthwiseConv2D", "Dice", "Discretization", "Dot", "Dropout", "ELU",
        "EinsumDense", "Embedding", "Equalization", "ExponentialDecay", "F1Score", "FBetaScore", "FalseNegatives",
        "FalsePositives", "Flatten", "FlaxLayer", "FloatDTypePolicy", "Ftrl", "Functional", "GPTQDTypePolicy", "GRU",
        "GRUCell", "GRUCellV1", "GRUCellV2", "GRUV1", "GRUV2", "GaussianDropout", "GaussianNoise",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalAvgPool1D",
        "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlorotNormal", "GlorotUniform",
        "GroupNormalization", "GroupQueryAttention", "HashedCrossing", "Hashing", "HeNormal", "HeUniform", "Hinge",
        "Huber", "Identity", "IdentityInitializer", "Initializer", "InputLayer", "InputSpec", "Int4DTypePolicy",
        "IntegerLookup", "InverseTimeDecay", "IoU", "JaxLayer", "KLDivergence", "L1", "L1L2", "L2", "LSTM",
        "LSTMCell", "LSTMCellV1", "LSTMCellV2", "LSTMV1", "LSTMV2", "Lamb", "Lambda", "Layer", "LayerNormalization",
        "LeakyReLU", "LearningRateSchedule", "LecunNormal", "LecunUniform", "Lion", "LocallyConnected1D",
        "LocallyConnected2D", "LogCosh", "LogCoshError", "Loss", "LossScaleOptimizer", "Masking", "MaxNorm",
        "MaxNumBoundingBoxes", "MaxPool1D", "MaxPool2D", "MaxPool3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
        "Maximum", "Mean", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanIoU", "MeanMetricWrapper",
        "MeanRelativeError", "MeanSquaredError", "MeanSquaredLogarithmicError", "MeanTensor", "MelSpectrogram",
        "Metric", "MinMaxNorm", "Minimum", "MixUp", "Model", "MultiHeadAttention", "MultiOptimizer", "Multiply",
        "Muon", "Nadam", "NonNeg", "Normalization", "OneHotIoU", "OneHotMeanIoU", "Ones", "Optimizer", "OptimizerMap",
        "Orthogonal", "OrthogonalInitializer", "OrthogonalRegularizer", "PReLU", "PearsonCorrelation", "Permute",
        "PiecewiseConstantDecay", "Pipeline", "Poisson", "Policy", "PolynomialDecay", "Precision",
        "PrecisionAtRecall", "QuantizedDTypePolicy", "QuantizedFloat8DTypePolicy", "R2Score", "RMSNormalization",
        "RMSprop", "RNN", "RadialConstraint", "RandAugment", "RandomBrightness", "RandomColorDegeneration",
        "RandomColorJitter", "RandomContrast", "RandomCrop", "RandomElasticTransform", "RandomErasing", "RandomFlip",
        "RandomGaussianBlur", "RandomGrayscale", "RandomHeight", "RandomHue", "RandomInvert", "RandomNormal",
        "RandomPerspective", "RandomPosterization", "RandomRotation", "RandomSaturation", "RandomSharpness",
        "RandomShear", "RandomTranslation", "RandomUniform", "RandomWidth", "RandomZoom", "ReLU", "Recall",
        "RecallAtPrecision", "Reduction", "Regularizer", "RepeatVector", "Rescaling", "Reshape", "Resizing",
        "ReversibleEmbedding", "RootMeanSquaredError", "SGD", "STFT", "STFTInitializer", "STFTSpectrogram",
        "ScheduleFreeAdamW", "SensitivityAtSpecificity", "SeparableConv1D", "SeparableConv2D",
        "SeparableConvolution1D", "SeparableConvolution2D", "Sequential", "SimpleRNN", "SimpleRNNCell",
        "SlicingOpLambda", "Softmax", "Solarization", "SparseCategoricalAccuracy", "SparseCategoricalCrossentropy",
        "SparseTopKCategoricalAccuracy", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
        "SpecificityAtSensitivity", "SpectralNormalization", "SquaredHinge", "StackedRNNCells", "StringLookup",
        "Subtract", "Sum", "SyncBatchNormalization", "TFOpLambda", "TFSMLayer", "TextVectorization",
        "ThresholdedReLU", "TimeDistributed", "TopKCategoricalAccuracy", "TorchModuleWrapper", "TrueNegatives",
        "TruePositives", "TruncatedNormal", "Tversky", "UnitNorm", "UnitNormalization", "UpSampling1D",
        "UpSampling2D", "UpSampling3D", "VarianceScaling", "Wrapper", "ZeroPadding1D", "ZeroPadding2D",
        "ZeroPadding3D", "Zeros", "constant", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
        "identity", "l1", "l1_l2", "l2", "lecun_normal", "lecun_uniform", "max_norm", "min_max_norm", "non_neg",
        "ones", "orthogonal", "orthogonal_regularizer", "radial_constraint", "random_normal", "random_uniform",
        "stft", "truncated_normal", "unit_norm", "variance_scaling", "zeros",
    }
)

# Public functions of Keras 3 and tf-keras 2.21 that a config names by string or as class_name 'function':
# activations, losses, metrics.
KERAS_FUNCTIONS = frozenset(
    {
        "KLD", "MAE", "MAPE", "MSE", "MSLE", "binary_accuracy", "binary_crossentropy", "binary_focal_crossentropy",
        "categorical_accuracy", "categorical_crossentropy", "categorical_focal_crossentropy",
        "categorical_generalized_cross_entropy", "categorical_hinge", "celu", "circle", "concordance_correlation",
        "cosine_similarity", "ctc", "dice", "elu", "exponential", "gelu", "glu", "hard_shrink", "hard_sigmoid",
        "hard_silu", "hard_swish", "hard_tanh", "hinge", "huber", "kl_divergence", "kld",
        "kullback_leibler_divergence", "leaky_relu", "linear", "log_cosh", "log_sigmoid", "log_softmax", "logcosh",
        "mae", "mape", "mean_absolute_error", "mean_absolute_percentage_error", "mean_squared_error",
        "mean_squared_logarithmic_error", "mish", "mse", "msle", "pearson_correlation", "poisson", "relu", "relu6",
        "selu", "sigmoid", "silu", "soft_shrink", "softmax", "softplus", "softsign", "sparse_categorical_accuracy",
        "sparse_categorical_crossentropy", "sparse_plus", "sparse_sigmoid", "sparse_top_k_categorical_accuracy",
        "sparsemax", "squared_hinge", "squareplus", "swish", "tanh", "tanh_shrink", "threshold",
        "top_k_categorical_accuracy", "tversky",
    }
)

# qkeras-v3 1.2.1: the layer and initializer classes its load_qmodel registers.
QKERAS_LAYERS = frozenset(
    {
        "Clip", "QActivation", "QAdaptiveActivation", "QAveragePooling2D", "QBatchNormalization", "QBidirectional",
        "QConv1D", "QConv2D", "QConv2DBatchnorm", "QConv2DTranspose", "QDense", "QDenseBatchnorm", "QDepthwiseConv2D",
        "QDepthwiseConv2DBatchnorm", "QGRU", "QGRUCell", "QGlobalAveragePooling2D", "QInitializer", "QLSTM",
        "QLSTMCell", "QScaleShift", "QSeparableConv1D", "QSeparableConv2D", "QSimpleRNN", "QSimpleRNNCell",
    }
)

# qkeras-v3 1.2.1: its quantizer registry and the quantization functions get_quantizer resolves.
QKERAS_QUANTIZERS = frozenset(
    {
        "bernoulli", "binary", "binary_sigmoid", "binary_tanh", "hard_sigmoid", "hard_tanh", "quantized_bits",
        "quantized_hswish", "quantized_linear", "quantized_po2", "quantized_relu", "quantized_relu_po2",
        "quantized_sigmoid", "quantized_tanh", "quantized_ulaw", "smooth_sigmoid", "smooth_tanh", "stochastic_binary",
        "stochastic_ternary", "ternary",
    }
)

