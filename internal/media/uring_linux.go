//go:build linux

package media

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// uring is a minimal io_uring (Linux 5.1+) used only to batch socket
// operations that land on different sockets. sendmmsg and recvmmsg batch
// only within one socket, and a relay has one socket per leg, so at 50
// packets a second per leg every packet otherwise costs two system calls of
// its own; on a virtual machine one system call costs more than the SRTP
// work (1.25 µs for getppid measured here). With the ring, one
// io_uring_enter carries every receive of an epoll round and one every
// send. No library was available for this (the Go io_uring packages are
// not served here), so this file holds just the part the relay uses: no
// SQPOLL, no fixed buffers, only non-blocking sendmsg and recvmsg, which
// complete during submission.
type uring struct {
	fd      int
	ringMem []byte
	cqMem   []byte
	sqeMem  []byte

	sqTail  *uint32
	sqHead  *uint32
	sqMask  uint32
	sqArray unsafe.Pointer
	sqes    unsafe.Pointer
	sqN     uint32
	tail    uint32 // local tail, published by submit
	pending uint32 // SQEs written since the last submit

	cqHead *uint32
	cqTail *uint32
	cqMask uint32
	cqes   unsafe.Pointer
}

const (
	opSendmsg     = 9
	opRecvmsg     = 10
	offSQRing     = 0
	offCQRing     = 0x8000000
	offSQEs       = 0x10000000
	featSingleMap = 1 << 0
	sizeofSQE     = 64
	sizeofCQE     = 16
)

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

type sqe struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	msgFlags uint32
	userData uint64
	bufIndex uint16
	pers     uint16
	spliceFD int32
	addr3    uint64
	pad      uint64
}

type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

var errRingFull = errors.New("io_uring submission queue full")

func newURing(entries uint32) (*uring, error) {
	var p uringParams
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", e)
	}
	u := &uring{fd: int(fd)}
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*sizeofCQE)
	if p.features&featSingleMap != 0 && cqSize > sqSize {
		sqSize = cqSize
	}
	var err error
	if u.ringMem, err = unix.Mmap(u.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		u.close()
		return nil, fmt.Errorf("io_uring mmap sq: %w", err)
	}
	cq := u.ringMem
	if p.features&featSingleMap == 0 {
		if u.cqMem, err = unix.Mmap(u.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			u.close()
			return nil, fmt.Errorf("io_uring mmap cq: %w", err)
		}
		cq = u.cqMem
	}
	if u.sqeMem, err = unix.Mmap(u.fd, offSQEs, int(p.sqEntries)*sizeofSQE, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		u.close()
		return nil, fmt.Errorf("io_uring mmap sqes: %w", err)
	}
	sq := unsafe.Pointer(&u.ringMem[0])
	u.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	u.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	u.sqMask = *(*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	u.sqArray = unsafe.Add(sq, p.sqOff.array)
	u.sqN = p.sqEntries
	u.sqes = unsafe.Pointer(&u.sqeMem[0])
	u.tail = atomic.LoadUint32(u.sqTail)
	cqp := unsafe.Pointer(&cq[0])
	u.cqHead = (*uint32)(unsafe.Add(cqp, p.cqOff.head))
	u.cqTail = (*uint32)(unsafe.Add(cqp, p.cqOff.tail))
	u.cqMask = *(*uint32)(unsafe.Add(cqp, p.cqOff.ringMask))
	u.cqes = unsafe.Add(cqp, p.cqOff.cqes)
	return u, nil
}

func (u *uring) close() {
	if u.sqeMem != nil {
		_ = unix.Munmap(u.sqeMem)
	}
	if u.cqMem != nil {
		_ = unix.Munmap(u.cqMem)
	}
	if u.ringMem != nil {
		_ = unix.Munmap(u.ringMem)
	}
	closeFD(u.fd)
}

// msg queues a non-blocking sendmsg or recvmsg of hdr on fd. MSG_DONTWAIT
// makes the kernel complete it during submission (with -EAGAIN if it
// cannot) instead of parking it.
func (u *uring) msg(op uint8, fd int, hdr *unix.Msghdr, tag uint64) error {
	if u.tail-atomic.LoadUint32(u.sqHead) >= u.sqN {
		return errRingFull
	}
	idx := u.tail & u.sqMask
	s := (*sqe)(unsafe.Add(u.sqes, uintptr(idx)*sizeofSQE))
	*s = sqe{opcode: op, fd: int32(fd), addr: uint64(uintptr(unsafe.Pointer(hdr))), len: 1,
		msgFlags: unix.MSG_DONTWAIT, userData: tag}
	*(*uint32)(unsafe.Add(u.sqArray, uintptr(idx)*4)) = idx
	u.tail++
	u.pending++
	return nil
}

// submit hands the queued operations to the kernel in one system call.
func (u *uring) submit() error {
	if u.pending == 0 {
		return nil
	}
	atomic.StoreUint32(u.sqTail, u.tail)
	n := u.pending
	u.pending = 0
	for n > 0 {
		r, _, e := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(u.fd), uintptr(n), 0, 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return fmt.Errorf("io_uring_enter: %w", e)
		}
		if r == 0 {
			return errors.New("io_uring_enter submitted nothing")
		}
		n -= uint32(r)
	}
	return nil
}

// reap calls fn for every completion available and consumes them.
func (u *uring) reap(fn func(tag uint64, res int32)) {
	head := atomic.LoadUint32(u.cqHead)
	tail := atomic.LoadUint32(u.cqTail)
	for ; head != tail; head++ {
		c := (*cqe)(unsafe.Add(u.cqes, uintptr(head&u.cqMask)*sizeofCQE))
		fn(c.userData, c.res)
	}
	atomic.StoreUint32(u.cqHead, head)
}
