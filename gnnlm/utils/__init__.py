"""Small helpers shared by the pipeline stages (no stage-specific code here).

* :mod:`gnnlm.utils.atomic`: the one atomic file writer (``atomic_write``, ``atomic_write_json``, ...);
* :mod:`gnnlm.utils.lazy`: lazy package attributes (``import gnnlm.data`` loads no torch);
* :mod:`gnnlm.utils.modules`: ``eval_mode(module)``, eval + no autograd with the modes restored after;
* :mod:`gnnlm.utils.progress`: a ``tqdm`` bar in a terminal, plain lines in a log;
* :mod:`gnnlm.utils.registry`: the one registry class (name, class, instance or ``pkg.mod:Class``) and
  the dotted-path importer that saved folders may not use unless trusted;
* :mod:`gnnlm.utils.strict_yaml`: strict YAML for configs and :class:`ConfigError`.
"""

from __future__ import annotations
