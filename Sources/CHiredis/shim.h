#ifndef SWERVE_CHIREDIS_SHIM_H
#define SWERVE_CHIREDIS_SHIM_H
// hiredis 0.14 (Debian bookworm: libhiredis-dev). Only SwerveRedis imports this module.
#include <hiredis/hiredis.h>
#endif
