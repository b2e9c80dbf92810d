#ifndef AMBIT_CLIBYAML_SHIM_H
#define AMBIT_CLIBYAML_SHIM_H
// libyaml (YAML 1.1 scanner and parser) from Debian's libyaml-dev. AmbitYAML builds its document
// tree from the parser's events.
#include <yaml.h>
#endif
