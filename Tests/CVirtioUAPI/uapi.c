// See CVirtioUAPI.h. Everything here comes straight from the kernel's UAPI header.
#include "CVirtioUAPI.h"
#include <stddef.h>
#include <linux/virtio_ring.h>

uapi_split_layout uapi_vring_layout(unsigned int num, unsigned long align) {
    struct vring vr;
    char *base = (char *)0x100000; /* vring_init only does address arithmetic */
    vring_init(&vr, num, base, align);
    uapi_split_layout l;
    l.size = vring_size(num, align);
    l.avail_offset = (uint64_t)((char *)vr.avail - base);
    l.used_offset = (uint64_t)((char *)vr.used - base);
    l.used_event_offset = (uint64_t)((char *)&vring_used_event(&vr) - (char *)vr.avail);
    l.avail_event_offset = (uint64_t)((char *)&vring_avail_event(&vr) - (char *)vr.used);
    l.avail_ring0_offset = offsetof(struct vring_avail, ring);
    l.used_ring0_offset = offsetof(struct vring_used, ring);
    return l;
}

int uapi_vring_need_event(uint16_t e, uint16_t n, uint16_t o) { return vring_need_event(e, n, o); }

uint64_t uapi_sizeof_vring_desc(void) { return sizeof(struct vring_desc); }
uint64_t uapi_sizeof_vring_used_elem(void) { return sizeof(struct vring_used_elem); }
uint64_t uapi_sizeof_vring_packed_desc(void) { return sizeof(struct vring_packed_desc); }
uint64_t uapi_offsetof_packed_desc_addr(void) { return offsetof(struct vring_packed_desc, addr); }
uint64_t uapi_offsetof_packed_desc_len(void) { return offsetof(struct vring_packed_desc, len); }
uint64_t uapi_offsetof_packed_desc_id(void) { return offsetof(struct vring_packed_desc, id); }
uint64_t uapi_offsetof_packed_desc_flags(void) { return offsetof(struct vring_packed_desc, flags); }
uint64_t uapi_sizeof_vring_packed_desc_event(void) { return sizeof(struct vring_packed_desc_event); }
uint64_t uapi_offsetof_packed_event_off_wrap(void) { return offsetof(struct vring_packed_desc_event, off_wrap); }
uint64_t uapi_offsetof_packed_event_flags(void) { return offsetof(struct vring_packed_desc_event, flags); }

uint16_t uapi_desc_f_next(void) { return VRING_DESC_F_NEXT; }
uint16_t uapi_desc_f_write(void) { return VRING_DESC_F_WRITE; }
uint16_t uapi_desc_f_indirect(void) { return VRING_DESC_F_INDIRECT; }
uint16_t uapi_packed_desc_f_avail(void) { return 1 << VRING_PACKED_DESC_F_AVAIL; }
uint16_t uapi_packed_desc_f_used(void) { return 1 << VRING_PACKED_DESC_F_USED; }
uint16_t uapi_used_f_no_notify(void) { return VRING_USED_F_NO_NOTIFY; }
uint16_t uapi_avail_f_no_interrupt(void) { return VRING_AVAIL_F_NO_INTERRUPT; }
uint16_t uapi_packed_event_flag_enable(void) { return VRING_PACKED_EVENT_FLAG_ENABLE; }
uint16_t uapi_packed_event_flag_disable(void) { return VRING_PACKED_EVENT_FLAG_DISABLE; }
uint16_t uapi_packed_event_flag_desc(void) { return VRING_PACKED_EVENT_FLAG_DESC; }
unsigned uapi_f_indirect_desc(void) { return VIRTIO_RING_F_INDIRECT_DESC; }
unsigned uapi_f_event_idx(void) { return VIRTIO_RING_F_EVENT_IDX; }
