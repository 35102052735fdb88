"""What the pages take from each office's config: display names of offices, services and
counters in Japanese and English, and the residents' alert settings ([alerts]).

Central's events carry ids only ("move", "5"); the names are in each office's config file. When
central is given the config files (`counterfloor central --office-config FILE`), pages use their
names and the offices' alert settings; otherwise they show the ids (a counter as "5番窓口" /
"counter 5") and the alerts' defaults (no e-mail: that needs the office's relay).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from central.web.i18n import Lang, text
from office.config import AlertSettings, Text, load_config


@dataclass(frozen=True, slots=True)
class Names:
    offices: dict[str, Text] = field(default_factory=dict)
    services: dict[tuple[str, str], Text] = field(default_factory=dict)
    counters: dict[tuple[str, str], Text] = field(default_factory=dict)
    alerts: dict[str, AlertSettings] = field(default_factory=dict)
    config_dirs: dict[str, Path] = field(default_factory=dict)  # where an office's config's relative paths start
    page_bases: dict[str, str] = field(default_factory=dict)  # office.public_base_url: ticket pages are below it

    @classmethod
    def from_configs(cls, paths: Iterable[str | Path]) -> Names:
        """ConfigError naming the file and the problem for a config that cannot be read."""
        names = cls()
        for path in paths:
            config = load_config(path)
            names.offices[config.id] = config.name
            names.alerts[config.id] = config.alerts
            names.config_dirs[config.id] = Path(path).resolve().parent
            names.page_bases[config.id] = config.public_base_url
            for s in config.services:
                names.services[config.id, s.id] = s.name
            for c in config.counters:
                names.counters[config.id, c.id] = c.name
        return names

    def alert_settings(self, office: str) -> AlertSettings:
        return self.alerts.get(office) or AlertSettings()

    def office(self, office: str, lang: Lang) -> str:
        name = self.offices.get(office)
        return getattr(name, lang) if name is not None else office

    def service(self, office: str, service: str, lang: Lang) -> str:
        name = self.services.get((office, service))
        return getattr(name, lang) if name is not None else service

    def counter(self, office: str, counter: str, lang: Lang) -> str:
        name = self.counters.get((office, counter))
        return getattr(name, lang) if name is not None else text("counter_default", lang, counter=counter)
