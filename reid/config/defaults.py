"""Every configuration key of unreid, with its default and a one-line comment.

Library code never reads this object: ``build_*`` functions turn the keys into plain keyword
arguments. YAML files override these defaults (``_BASE_`` inheritance, see
``reid.config.get_cfg``/``load_cfg``) and the command line overrides the YAML (``KEY VALUE``).
"""
from yacs.config import CfgNode as CN

_C = CN()

_C.OUTPUT_DIR = "logs/default"  # where config.yaml, checkpoints, metrics and TensorBoard go
_C.SEED = 1  # global seed of python, numpy and torch
_C.DEVICE = "auto"  # "auto" (cuda if available), "cpu", "cuda" or "cuda:N"
_C.DETERMINISTIC = False  # torch deterministic algorithms (slower, bit-reproducible on CPU)
_C.NUM_THREADS = 0  # CPU threads of torch (torch.set_num_threads), numba and faiss in the main process, logged at start; each data worker uses 1; 0 = the libraries' defaults (all cores: oversubscribes a shared machine)

# ---------------------------------------------------------------------------------------
_C.MODEL = CN()
_C.MODEL.ARCH = "resnet50"  # backbone name in reid.models (resnet18/34/50/101, resnet50_ibn_a, mobilenet_v2, video archs)
_C.MODEL.PRETRAINED_PATH = ""  # local ImageNet-style checkpoint for the trunk; "" = random initialisation
_C.MODEL.WEIGHTS = ""  # full unreid checkpoint loaded by tools/test.py (and to initialise training)
_C.MODEL.WEIGHTS_PARTIAL = False  # load MODEL.WEIGHTS / MODEL.PRETRAINED_PATH although tensors are missing, unexpected or mis-shaped (listed in the log); False refuses such a checkpoint (classifier head and DSBN <-> BN conversion always allowed)
_C.MODEL.LAST_STRIDE = 1  # stride of the last stage (1 doubles the final feature map, as usual in re-ID)
_C.MODEL.POOLING = "avg"  # global pooling: "avg", "max" or "gem"
_C.MODEL.GEM_P = 3.0  # initial exponent p of GeM pooling
_C.MODEL.EMA_MOMENTUM = 0.0  # > 0: mean teacher (EMA of the weights, per step) extracts the clustered / memory features and is evaluated
_C.MODEL.NECK = True  # BatchNorm1d neck on the pooled embedding (BNNeck)
_C.MODEL.EMBED_DIM = 0  # linear reduction of the embedding to this size; 0 keeps the backbone width
_C.MODEL.DROPOUT = 0.0  # dropout on the embedding before the classifier (supervised training)
_C.MODEL.CHANNELS_LAST = False  # channels-last memory format for the CNN trunk
_C.MODEL.CAMERA_BN = False  # train with one BN branch per target camera, affine shared (camera-based BN; needs TEST.CAMERA_BN)

_C.MODEL.DSBN = CN()
_C.MODEL.DSBN.ENABLED = True  # domain-specific BatchNorm when training uses several domains
_C.MODEL.DSBN.NUM_DOMAINS = 0  # number of BN branches; 0 = number of source + target datasets
_C.MODEL.DSBN.TEST_DOMAIN = -1  # BN branch used at test time; -1 = the last domain (the target)

_C.MODEL.BN = CN()
_C.MODEL.BN.SAMPLES_PER_BN = 0  # compute BN statistics over groups of this many samples; 0 = whole batch
_C.MODEL.BN.SYNC = False  # SyncBatchNorm across DDP ranks (ignored without torch.distributed)

_C.MODEL.VIDEO = CN()
_C.MODEL.VIDEO.PATCH_SIZE = 16  # spatial patch size of ViT-style video models (pixels)
_C.MODEL.VIDEO.TUBELET = 2  # temporal size of a tubelet / cube embedding (frames)
_C.MODEL.VIDEO.EMBED_DIM = 384  # token width of video transformers
_C.MODEL.VIDEO.DEPTH = 12  # number of transformer blocks
_C.MODEL.VIDEO.NUM_HEADS = 6  # attention heads per block
_C.MODEL.VIDEO.MLP_RATIO = 4.0  # hidden width of the MLP relative to EMBED_DIM
_C.MODEL.VIDEO.DROP_PATH = 0.1  # stochastic depth rate
_C.MODEL.VIDEO.TEMPORAL_POOL = "avg"  # frame aggregation of the 2D baseline: "avg" or "attention"
_C.MODEL.VIDEO.FRAME_TRUNK = "resnet50"  # per-frame trunk (backbone name) of the 2D baseline
_C.MODEL.VIDEO.INFLATE_INIT = "mean"  # 2D->3D initialisation: "mean" (copy / t) or "center" (central frame)
_C.MODEL.VIDEO.MASK_RATIO = 0.9  # VideoMAE tube-masking ratio of tools/pretrain_videomae.py
_C.MODEL.VIDEO.CHECKPOINT_2D = ""  # local 2D ViT / ResNet checkpoint to inflate into the video model

# ---------------------------------------------------------------------------------------
_C.INPUT = CN()
_C.INPUT.SIZE_TRAIN = [256, 128]  # (height, width) of training images, pixels
_C.INPUT.SIZE_TEST = [256, 128]  # (height, width) of test images, pixels
_C.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]  # RGB mean used to normalise inputs in [0, 1]
_C.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]  # RGB std used to normalise inputs in [0, 1]
_C.INPUT.FLIP_PROB = 0.5  # probability of a horizontal flip (training)
_C.INPUT.PADDING = 10  # zero padding before the random crop back to SIZE_TRAIN (pixels); 0 disables
_C.INPUT.ERASING_PROB = 0.5  # probability of random erasing (training)
_C.INPUT.COLOR_JITTER_PROB = 0.0  # probability of colour jitter (training, images only); 0 = off
_C.INPUT.COLOR_JITTER = [0.4, 0.4, 0.4, 0.1]  # colour jitter strengths: brightness, contrast, saturation, hue
_C.INPUT.GRAYSCALE_PROB = 0.0  # probability of a grayscale conversion (training, images only)
_C.INPUT.SEQ_LEN = 8  # frames per clip for video datasets
_C.INPUT.SAMPLER_TRAIN = "segment"  # video clip sampling for training: "segment" (TSN) or "dense"
_C.INPUT.SAMPLER_TEST = "all"  # video clips for extraction and evaluation: "all" (every frame in clips of SEQ_LEN, features averaged) or "evenly" (one clip: the middle frames of SEQ_LEN equal segments; ~frames/SEQ_LEN times cheaper)

# ---------------------------------------------------------------------------------------
_C.DATASETS = CN()
_C.DATASETS.ROOT = "datasets"  # folder holding one sub-folder per dataset (see datasets/README.md)
_C.DATASETS.SOURCE = []  # labelled source dataset names (empty for purely unsupervised learning)
_C.DATASETS.TARGET = []  # unlabelled target dataset names
_C.DATASETS.TEST = []  # datasets evaluated during/after training; empty = the targets
_C.DATASETS.SKIP_CORRUPT = False  # skip (and count) unreadable images instead of failing
_C.DATASETS.CUHK03_LABELED = False  # CUHK03 new protocol: labeled boxes instead of detected ones
_C.DATASETS.VEHICLEID_TEST_SIZE = 800  # VehicleID test split: 800, 1600 or 2400
_C.DATASETS.SYNTHETIC = CN()
_C.DATASETS.SYNTHETIC.IDS = 0  # identities per split of generated synthetic sets; 0 = generator default
_C.DATASETS.SYNTHETIC.CAMS = 0  # cameras of generated synthetic sets; 0 = generator default
_C.DATASETS.SYNTHETIC.SIZE = [0, 0]  # (height, width) of generated images; 0 = generator default
_C.DATASETS.SYNTHETIC.SEED = 0  # seed of the synthetic generator
_C.DATASETS.FOLDER = CN()
_C.DATASETS.FOLDER.CAMERA_REGEX = ""  # folder:/identities: camera from this regex on the file name (first group); "" = camera sub-folder
_C.DATASETS.FOLDER.SPLIT_SEED = 0  # identities: seed of the query draw (one query per identity and camera)
_C.DATASETS.FOLDER.VERIFY = True  # folder:/identities: check every file's header at scan time; unreadable files are skipped with one warning

# ---------------------------------------------------------------------------------------
_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 2  # data loading worker processes
_C.DATALOADER.NUM_INSTANCES = 4  # images per identity in an identity-balanced batch
_C.DATALOADER.CAMERA_CHUNK = 16  # images of one camera per chunk of a target batch with MODEL.CAMERA_BN
_C.DATALOADER.SAMPLER = "random"  # training batches: random (targets uniform random, labelled sources P x K) | pk (targets also P x K over pseudo groups: SpCL clusters, CAP proxies; outliers never sampled) | cross_camera (SpCL's published sampler for sources and targets: per identity an anchor + K-1 images of other cameras, each outlier an identity of its own; docs/SPCL.md)

# ---------------------------------------------------------------------------------------
_C.SOLVER = CN()
_C.SOLVER.OPTIMIZER = "adam"  # "adam", "adamw" or "sgd"
_C.SOLVER.BASE_LR = 3.5e-4  # learning rate after warm-up
_C.SOLVER.WEIGHT_DECAY = 5e-4  # L2 weight decay
_C.SOLVER.MOMENTUM = 0.9  # SGD momentum
_C.SOLVER.FUSED = False  # PyTorch's fused optimizer kernel (CPU / CUDA; same update up to float rounding) instead of its default loop
_C.SOLVER.MAX_EPOCHS = 50  # training epochs
_C.SOLVER.ITERS = 400  # iterations per epoch
_C.SOLVER.IMS_PER_BATCH = 64  # images per batch and domain group (source and target halves in UDA)
_C.SOLVER.WARMUP_EPOCHS = 10  # linear warm-up length, epochs
_C.SOLVER.WARMUP_FACTOR = 0.01  # learning-rate factor at the start of warm-up
_C.SOLVER.STEPS = [20, 40]  # epochs at which the learning rate is multiplied by GAMMA
_C.SOLVER.GAMMA = 0.1  # step decay factor
_C.SOLVER.AMP = True  # automatic mixed precision on CUDA (ignored on CPU)
_C.SOLVER.CHECKPOINT_PERIOD = 1  # epochs between checkpoints
_C.SOLVER.LABEL_SMOOTHING = 0.1  # label smoothing of the supervised cross-entropy
_C.SOLVER.TRIPLET_MARGIN = 0.3  # margin of the batch-hard triplet loss; 0 = soft margin
_C.SOLVER.TRIPLET_WEIGHT = 1.0  # weight of the triplet loss in supervised training
_C.SOLVER.TRIPLET_NORM_FEAT = False  # L2-normalise features before the triplet distances
_C.SOLVER.METHOD = "spcl"  # training method (runner): "spcl", "cap" (camera-aware proxies), "cluster_contrast" or "supervised"

# ---------------------------------------------------------------------------------------
_C.CLUSTER = CN()
_C.CLUSTER.METHOD = "dbscan"  # pseudo-label generator: "dbscan" (Jaccard + DBSCAN) or "kmeans"
_C.CLUSTER.K1 = 30  # k-reciprocal neighbourhood size k1 (Zhong et al., CVPR 2017)
_C.CLUSTER.K2 = 6  # local query expansion size k2
_C.CLUSTER.K1_PLUS_ONE = False  # search k1+1 neighbours as in the paper (published SpCL code uses k1)
_C.CLUSTER.EPS = 0.6  # DBSCAN radius on the Jaccard distance
_C.CLUSTER.EPS_GAP = 0.02  # gap of the looser / tighter DBSCAN runs of the reliability criterion
_C.CLUSTER.MIN_SAMPLES = 4  # DBSCAN min_samples (the point itself counted)
_C.CLUSTER.SELF_PACED = True  # apply the self-paced cluster reliability criterion
_C.CLUSTER.NUM_CLUSTERS = 500  # k of k-means pseudo labels
_C.CLUSTER.KMEANS_NITER = 300  # Lloyd iterations of k-means pseudo labels (faiss)
_C.CLUSTER.KNN_BACKEND = "auto"  # "auto", "faiss" or "torch"
_C.CLUSTER.CAMERA_CENTRE = False  # subtract each camera's mean feature before clustering (not in SpCL)
_C.CLUSTER.CAMERA_AWARE = False  # camera-aware Jaccard (CA-Jaccard, CVPR 2024): K1 / K2 within each camera, K1_INTER / K2_INTER across cameras
_C.CLUSTER.K1_INTER = 5  # camera-aware Jaccard: cross-camera k-reciprocal neighbourhood size
_C.CLUSTER.K2_INTER = 0  # camera-aware Jaccard: cross-camera neighbours in the local query expansion
_C.CLUSTER.CAMERA_GROUPS = []  # disjoint lists of camera ids never sharing identities (topology prior), e.g. [[0, 1], [2, 3]]: pseudo labels never link two groups; [] = off
_C.CLUSTER.FEATURES = "memory"  # features clustered each epoch: "memory" (SpCL code) or "extract" (fresh pass)
_C.CLUSTER.KNN = "exact"  # kNN of the Jaccard distance: "exact" (brute force, CLUSTER.KNN_BACKEND) or "ivf" (faiss inverted file, approximate; docs/SCALING.md)
_C.CLUSTER.IVF_NLIST = 0  # IVF lists; 0 = rule round(4 sqrt(N)) clamped to [1, min(65536, N // 39)]
_C.CLUSTER.IVF_NPROBE = 44  # IVF lists scanned per query (clipped to nlist; nprobe >= nlist = exact search)
_C.CLUSTER.IVF_FP16 = False  # IVF index stores the vectors as float16 (half the index memory)
_C.CLUSTER.IVF_SPHERICAL = False  # IVF centroids by spherical k-means (unit norm): even lists, no list of diffuse rows that every query scans; see docs/SCALING.md for the measured trade-off
_C.CLUSTER.IVF_PQ = 0  # > 0: IVF-PQ with this many 8-bit sub-quantisers (D divisible by it); 0 = IVF-Flat
_C.CLUSTER.BLOCK_ROWS = 0  # > 0: stream query expansion and Jaccard rows in blocks of this many rows, keeping only distances <= EPS + EPS_GAP (same labels, much less memory); 0 = in memory

# ---------------------------------------------------------------------------------------
_C.MEMORY = CN()
_C.MEMORY.MOMENTUM = 0.2  # momentum m of memory updates: f <- m f + (1 - m) x
_C.MEMORY.TEMPERATURE = 0.05  # temperature of the unified contrastive loss
_C.MEMORY.LOSS_REDUCTION = "domain_sum"  # unified loss of a UDA batch: domain_sum (sum over domains of each domain's batch mean, SpCL's L_s + L_t) | mean (mean over the joint batch, half of it for one source + one target); same for USL
_C.MEMORY.SOFTMAX_EPS = 0.0  # the released SpCL code's 1e-6 inside the softmax normaliser and the log (0: exact log-softmax; 1e-6: as released)
_C.MEMORY.REFRESH = False  # with CLUSTER.FEATURES extract: target rows replaced by the fresh extraction each epoch
_C.MEMORY.CC_UPDATE = "mean"  # cluster_contrast memory update (MOMENTUM / TEMPERATURE above apply too): "mean" (every sample, in batch order) or "hard" (per cluster, its least similar batch member)

# ---------------------------------------------------------------------------------------
# Camera-aware proxies (SOLVER.METHOD "cap"; Wang et al., AAAI 2021)
_C.CAP = CN()
_C.CAP.TEMPERATURE = 0.07  # temperature of the intra- and inter-camera proxy losses
_C.CAP.INTRA_WEIGHT = 1.0  # weight of the intra-camera proxy loss (target samples)
_C.CAP.INTER_WEIGHT = 0.5  # weight of the inter-camera proxy loss (target samples)
_C.CAP.SPCL_WEIGHT = 0.0  # weight of SpCL's unified loss on every sample (> 0 needed with a SOURCE)
_C.CAP.NUM_HARD = 50  # hardest negative proxies (other clusters) in the inter-camera loss
_C.CAP.UNSEEN_SKIP = 0  # per camera of the sample's group (CLUSTER.CAMERA_GROUPS) without a proxy of its cluster, its most similar proxies left out of the inter-camera negatives; 0 = CAP

# ---------------------------------------------------------------------------------------
_C.TEST = CN()
_C.TEST.IMS_PER_BATCH = 128  # images per batch during feature extraction
_C.TEST.EVAL_PERIOD = 1  # epochs between evaluations
_C.TEST.EVAL_SOURCE = False  # also evaluate the source test sets
_C.TEST.METRIC = "euclidean"  # distance of the ranking: "euclidean" (squared) or "cosine"
_C.TEST.NORM_FEAT = True  # L2-normalise features before computing distances
_C.TEST.FLIP = False  # average features of the image and its horizontal flip
_C.TEST.BLOCK_SIZE = 2048  # query rows per distance block in feature-level evaluation
_C.TEST.MAX_RANK = 50  # length of the CMC curve
_C.TEST.RERANK = False  # k-reciprocal re-ranking of the distance at test time
_C.TEST.RERANK_K1 = 20  # re-ranking k1
_C.TEST.RERANK_K2 = 6  # re-ranking k2
_C.TEST.RERANK_LAMBDA = 0.3  # weight of the original distance in re-ranking
_C.TEST.CAMERA_BN = False  # BN statistics per camera, from the test set's unlabelled train images
_C.TEST.FEATURES = ""  # saved .npz (arrays "query", "gallery") to evaluate instead of extracting
_C.TEST.SAVE_FEATURES = False  # tools/test.py writes OUTPUT_DIR/features_<dataset>.npz

# ---------------------------------------------------------------------------------------
# Self-supervised VideoMAE pretraining on unlabelled tracklets (tools/pretrain_videomae.py). The
# encoder is MODEL.ARCH (videomae_vit / videomae_vit_tiny) with MODEL.VIDEO.*, on clips of
# INPUT.SEQ_LEN frames at INPUT.SIZE_TRAIN drawn by INPUT.SAMPLER_TRAIN; the checkpoint is
# OUTPUT_DIR/videomae_pretrain.pth, loaded by MODEL.VIDEO.CHECKPOINT_2D of a re-ID run.
_C.PRETRAIN = CN()
_C.PRETRAIN.TRACKLETS_ROOT = ""  # folder of unlabelled tracklets: MARS file names group frames into tracklets, any other folder is one tracklet
_C.PRETRAIN.MAX_EPOCHS = 50  # epochs
_C.PRETRAIN.ITERS = 0  # iterations per epoch (0: one pass over the tracklets)
_C.PRETRAIN.IMS_PER_BATCH = 16  # clips per batch
_C.PRETRAIN.BASE_LR = 0.00015  # peak AdamW learning rate (betas 0.9 / 0.95), cosine decay to 0
_C.PRETRAIN.WEIGHT_DECAY = 0.05  # AdamW weight decay
_C.PRETRAIN.WARMUP_EPOCHS = 0.0  # linear warm-up length in epochs (fractions allowed)
_C.PRETRAIN.DECODER_DIM = 0  # decoder width (0: half the encoder width)
_C.PRETRAIN.DECODER_DEPTH = 4  # decoder blocks
_C.PRETRAIN.DECODER_HEADS = 0  # decoder heads (0: width / 64)
