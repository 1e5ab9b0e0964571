#include "xbgp.h"

/* Reject routes whose MULTI_EXIT_DISC is above 1000; let the next filter decide otherwise. */
uint64_t med_filter(void)
{
    struct path_attribute *med = get_attr(ATTR_MED);
    if (med != 0 && med->value > 1000)
        return PLUGIN_FILTER_REJECT;
    return next();
}
