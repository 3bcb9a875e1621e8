"""Deep copies of a text model that copy every weight but share its (stateless) tokenizer."""

from __future__ import annotations

import copy


class SharesTokenizerOnCopy:
    """Mixin for modules holding ``self.tokenizer``: ``copy.deepcopy`` shares it."""

    def __deepcopy__(self, memo: dict):
        memo[id(self.tokenizer)] = self.tokenizer
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        clone.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return clone
