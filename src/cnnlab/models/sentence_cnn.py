"""The sentence CNN. Kim, "Convolutional Neural Networks for Sentence Classification", EMNLP 2014: token ids
[N, L] -> embeddings -> 1-D convs (widths 3, 4, 5; 100 maps each) -> ReLU -> max over time -> dropout -> logits."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

# section 3.3: embeddings learned from U[-0.25, 0.25] (Kim's code), pretrained and frozen, pretrained and fine-tuned,
# or a frozen and a fine-tuned copy (each filter applied to both channels, the results added)
VARIANTS = ("rand", "static", "non-static", "multichannel")
PAD_ID = 0  # cnnlab.data.text pads with id 0


class SentenceCNN(nn.Module):
    """Kim's CNN for sentence classification; input int64 token ids [N, L] right-padded with 0."""

    def __init__(self, vocab_size: Optional[int] = None, num_classes: int = 2, embeddings: Optional[Tensor] = None,
                 variant: str = "rand", embed_dim: int = 300, kernel_sizes: Sequence[int] = (3, 4, 5),
                 num_maps: int = 100, dropout: float = 0.5, max_norm: Optional[float] = 3.0,
                 embed_init: float = 0.25, embed_dropout: float = 0.0, wide: bool = True) -> None:
        super().__init__()
        if vocab_size is None:
            raise ConfigError("model=sentence_cnn needs token ids: use a text data config (data=sst2, mr, "
                              "text_files or sentiment_synthetic)")
        if variant not in VARIANTS:
            raise ConfigError(f"model.variant={variant} is not known: use one of {', '.join(VARIANTS)}")
        pretrained = variant != "rand"
        if pretrained and embeddings is None:
            raise ConfigError(f"model.variant={variant} starts from pretrained vectors: set data.vectors=<GloVe or "
                              f"word2vec file>, or use model.variant=rand")
        if pretrained and tuple(embeddings.shape) != (vocab_size, embed_dim):
            raise ConfigError(f"the vectors are {embeddings.shape[1]}-dimensional but model.embed_dim={embed_dim}: "
                              f"set model.embed_dim={embeddings.shape[1]}, or choose vectors of dimension {embed_dim}")
        self.max_norm, self.wide = max_norm, wide
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if not self.kernel_sizes:
            raise ConfigError("model.kernel_sizes=[] is not valid: give at least one filter width, e.g. [3,4,5]")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        if pretrained:
            self.embedding.weight.data.copy_(embeddings)
            self.embedding.weight.requires_grad_(variant != "static")
        else:
            nn.init.uniform_(self.embedding.weight, -embed_init, embed_init)  # Kim's code: U[-0.25, 0.25]
        with torch.no_grad():
            self.embedding.weight[PAD_ID].zero_()
        self.static = nn.Embedding.from_pretrained(self.embedding.weight.detach().clone(), freeze=True,
                                                   padding_idx=PAD_ID) if variant == "multichannel" else None
        # wide (Kalchbrenner et al. 2014; Kim's code pads too): k - 1 zero vectors on both sides, so edge words get as
        # many windows as inner ones (about one point on SST-2); narrow: the paper's n - k + 1 windows
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, num_maps, k, padding=k - 1 if wide else 0)
                                   for k in self.kernel_sizes)
        self.embed_dropout = nn.Dropout(embed_dropout)  # not in Kim 2014 (0 = off): regularises CNN-rand
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(num_maps * len(self.kernel_sizes), num_classes)

    def check_input(self, x: Tensor) -> None:
        """ConfigError with the fix unless `x` is [N, L] integer token ids (run.check_compatible calls it)."""
        if x.dim() != 2 or x.dtype not in (torch.int32, torch.int64):
            raise ConfigError(f"model=sentence_cnn expects [N, L] token ids, got {x.dtype} {list(x.shape)}: use a "
                              f"text data config (data=sst2, mr, text_files or sentiment_synthetic)")

    def no_weight_decay(self) -> set[str]:
        """Embeddings are never weight-decayed (rare words would shrink towards zero between their updates)."""
        return {name for name, _ in self.named_parameters() if name.startswith(("embedding.", "static."))}

    @torch.no_grad()
    def after_step(self) -> None:
        """Kim's max-norm constraint (section 2.1): rescale each class's weight vector to norm `max_norm` if longer."""
        if self.max_norm is not None:
            w = self.fc.weight
            w.mul_((self.max_norm / w.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0))

    def features(self, x: Tensor) -> Tensor:
        """The pooled features [N, num_maps * len(kernel_sizes)] before dropout."""
        widest = max(self.kernel_sizes)
        if x.shape[1] < widest:  # a batch of short sentences: pad so the widest filter has one window
            x = F.pad(x, (0, widest - x.shape[1]), value=PAD_ID)
        length = (x != PAD_ID).sum(1, keepdim=True)  # [N, 1] tokens per sentence
        emb = self.embedding(x)
        if self.static is not None:  # conv(a) + conv(b) = conv(a + b): both channels through one conv
            emb = emb + self.static(x)
        emb = self.embed_dropout(emb).transpose(1, 2)  # [N, D, L]: channels = embedding dimensions, time = tokens
        pooled = []
        for k, conv in zip(self.kernel_sizes, self.convs):
            h = F.relu(conv(emb))  # [N, maps, L - k + 1] (wide: L + k - 1)
            start = torch.arange(h.shape[2], device=x.device)
            # windows with a word in them (wide), or starting in the sentence (narrow; the first one at least):
            # batch padding never enters the max, so a sentence scores the same alone and in any batch
            inside = start <= (length + k - 2 if self.wide else (length - k).clamp_min(0))
            pooled.append(h.masked_fill(~inside.unsqueeze(1), 0.0).amax(2))  # ReLU >= 0: a masked 0 never wins
        return torch.cat(pooled, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.features(x)))
