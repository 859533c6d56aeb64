#ifndef COORDINATORD_CHIREDIS_SHIM_H
#define COORDINATORD_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
