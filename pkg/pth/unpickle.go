package pth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
)

// The values the unpickler builds.
type (
	tuple  []any
	list   struct{ items []any }
	global struct{ module, name string }
	// object is the inert result of calling a class or function the
	// reader does not know, or of instantiating one.
	object struct{ of global }
	mark   struct{}
	dict   struct {
		keys, vals []any
		index      map[any]int // position of each scalar key, so that building is linear
	}
	// storage is a persistent-id record: a typed storage in data/<key>.
	storage struct {
		class string // "FloatStorage", ...
		key   string
		numel int64
	}
	// tensorRef is a tensor view into a storage, in elements.
	tensorRef struct {
		storage      *storage
		offset       int64
		size, stride []int64
	}
)

func (d *dict) get(key string) any {
	if i, ok := d.index[key]; ok {
		return d.vals[i]
	}
	return nil
}

// set sets key k, replacing the value of an equal scalar key (tuples and
// lists are never equal to anything, as Python hashes them by identity
// here). It takes constant time: a 200,000-key dict once took minutes.
func (d *dict) set(k, v any) {
	if scalar(k) {
		if i, ok := d.index[k]; ok {
			d.vals[i] = v
			return
		}
		if d.index == nil {
			d.index = map[any]int{}
		}
		d.index[k] = len(d.keys)
	}
	d.keys, d.vals = append(d.keys, k), append(d.vals, v)
}

// scalar reports whether v compares by value (tuples and lists do not).
func scalar(v any) bool {
	switch v.(type) {
	case nil, string, int64, float64, bool, global:
		return true
	}
	return false
}

// Bounds of what a pickle may build: a state dict of the largest networks
// lwr reads stacks and memoises a few thousand values.
const (
	maxStack = 1 << 20 // values on the stack at once
	maxMemo  = 1 << 20 // memoised values
)

// describe names v's kind and size without printing it: untrusted values
// can be deep (a 30-level tuple of memoised tuples prints 3^30 leaves).
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case tuple:
		return fmt.Sprintf("a tuple of %d", len(x))
	case *list:
		return fmt.Sprintf("a list of %d", len(x.items))
	case *dict:
		return fmt.Sprintf("a dict of %d", len(x.keys))
	case string:
		return fmt.Sprintf("a string of %d bytes", len(x))
	case global:
		return "a global"
	case object:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}

// unpickle runs the pickle program p (protocols 2 to 5, the opcodes
// torch.save and the pickled objects of training checkpoints use) and
// returns the value it stops with.
func unpickle(p []byte) (any, error) {
	u := &unpickler{p: p, memo: map[int64]any{}}
	v, err := u.run()
	if err != nil {
		return nil, fmt.Errorf("pickle byte %d: %w", u.op, err)
	}
	return v, nil
}

type unpickler struct {
	p     []byte
	i, op int // read position; start of the current opcode
	stack []any
	memo  map[int64]any
}

var errShort = errors.New("truncated")

func (u *unpickler) take(n int) ([]byte, error) {
	if n < 0 || n > len(u.p)-u.i {
		return nil, errShort
	}
	b := u.p[u.i : u.i+n]
	u.i += n
	return b, nil
}

func (u *unpickler) uint(n int) (uint64, error) {
	b, err := u.take(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for k := n - 1; k >= 0; k-- {
		v = v<<8 | uint64(b[k])
	}
	return v, nil
}

// line reads up to a newline (GLOBAL's operands).
func (u *unpickler) line() (string, error) {
	for j := u.i; j < len(u.p) && j-u.i < 256; j++ {
		if u.p[j] == '\n' {
			s := string(u.p[u.i:j])
			u.i = j + 1
			return s, nil
		}
	}
	return "", errShort
}

func (u *unpickler) push(v any) { u.stack = append(u.stack, v) }

func (u *unpickler) pop() (any, error) {
	if len(u.stack) == 0 {
		return nil, errors.New("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack = u.stack[:len(u.stack)-1]
	if _, ok := v.(mark); ok {
		return nil, errors.New("unexpected mark")
	}
	return v, nil
}

// popMark returns the items above the topmost mark and removes them and it.
func (u *unpickler) popMark() ([]any, error) {
	for k := len(u.stack) - 1; k >= 0; k-- {
		if _, ok := u.stack[k].(mark); ok {
			items := append([]any{}, u.stack[k+1:]...)
			u.stack = u.stack[:k]
			return items, nil
		}
	}
	return nil, errors.New("no mark")
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) == 0 {
		return nil, errors.New("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

func (u *unpickler) run() (any, error) {
	for u.i < len(u.p) {
		if len(u.stack) > maxStack || len(u.memo) > maxMemo {
			return nil, fmt.Errorf("more than %d values on the stack or in the memo: not a state dict", maxStack)
		}
		u.op = u.i
		op := u.p[u.i]
		u.i++
		var err error
		switch op {
		case 0x80: // PROTO
			_, err = u.take(1)
		case 0x95: // FRAME
			_, err = u.take(8)
		case '.': // STOP
			v, err := u.pop()
			return v, err
		case '(': // MARK
			u.push(mark{})
		case '0': // POP
			_, err = u.pop()
		case '1': // POP_MARK
			_, err = u.popMark()
		case '2': // DUP
			var v any
			if v, err = u.top(); err == nil {
				u.push(v)
			}
		case 'N':
			u.push(nil)
		case 0x88:
			u.push(true)
		case 0x89:
			u.push(false)
		case 'K', 'M': // BININT1, BININT2
			n := 1
			if op == 'M' {
				n = 2
			}
			var v uint64
			if v, err = u.uint(n); err == nil {
				u.push(int64(v))
			}
		case 'J': // BININT
			var v uint64
			if v, err = u.uint(4); err == nil {
				u.push(int64(int32(uint32(v))))
			}
		case 0x8a: // LONG1
			var n uint64
			if n, err = u.uint(1); err == nil {
				var b []byte
				if b, err = u.take(int(n)); err == nil {
					u.push(long(b))
				}
			}
		case 'G': // BINFLOAT, big-endian
			var b []byte
			if b, err = u.take(8); err == nil {
				u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))
			}
		case 'X', 0x8c, 0x8d, 'T', 'U', 'B', 'C', 0x8e: // strings and bytes
			width := map[byte]int{'X': 4, 0x8c: 1, 0x8d: 8, 'T': 4, 'U': 1, 'B': 4, 'C': 1, 0x8e: 8}[op]
			var n uint64
			if n, err = u.uint(width); err == nil {
				if n > uint64(len(u.p)) {
					err = errShort
					break
				}
				var b []byte
				if b, err = u.take(int(n)); err == nil {
					u.push(string(b))
				}
			}
		case ')':
			u.push(tuple{})
		case 0x85, 0x86, 0x87: // TUPLE1..3
			n := int(op - 0x84)
			if len(u.stack) < n {
				err = errors.New("stack underflow")
				break
			}
			t := append(tuple{}, u.stack[len(u.stack)-n:]...)
			for _, v := range t {
				if _, ok := v.(mark); ok {
					err = errors.New("unexpected mark")
				}
			}
			u.stack = u.stack[:len(u.stack)-n]
			u.push(t)
		case 't':
			var items []any
			if items, err = u.popMark(); err == nil {
				u.push(tuple(items))
			}
		case ']':
			u.push(&list{})
		case 'l':
			var items []any
			if items, err = u.popMark(); err == nil {
				u.push(&list{items: items})
			}
		case 'a', 'e': // APPEND, APPENDS
			var items []any
			if op == 'a' {
				var v any
				if v, err = u.pop(); err != nil {
					break
				}
				items = []any{v}
			} else if items, err = u.popMark(); err != nil {
				break
			}
			var t any
			if t, err = u.top(); err == nil {
				if l, ok := t.(*list); ok {
					l.items = append(l.items, items...)
				} // appending to an inert object: ignored
			}
		case '}':
			u.push(&dict{})
		case 'd':
			var items []any
			if items, err = u.popMark(); err == nil {
				err = u.setItems(&dict{}, items)
			}
		case 's', 'u': // SETITEM, SETITEMS
			var items []any
			if op == 's' {
				var k, v any
				if v, err = u.pop(); err != nil {
					break
				}
				if k, err = u.pop(); err != nil {
					break
				}
				items = []any{k, v}
			} else if items, err = u.popMark(); err != nil {
				break
			}
			var t any
			if t, err = u.pop(); err == nil {
				err = u.setItems(t, items)
			}
		case 0x8f: // EMPTY_SET
			u.push(&list{})
		case 0x90: // ADDITEMS
			_, err = u.popMark()
		case 'q', 'r': // BINPUT, LONG_BINPUT
			n := 1
			if op == 'r' {
				n = 4
			}
			var k uint64
			if k, err = u.uint(n); err == nil {
				var v any
				if v, err = u.top(); err == nil {
					u.memo[int64(k)] = v
				}
			}
		case 0x94: // MEMOIZE
			var v any
			if v, err = u.top(); err == nil {
				u.memo[int64(len(u.memo))] = v
			}
		case 'h', 'j': // BINGET, LONG_BINGET
			n := 1
			if op == 'j' {
				n = 4
			}
			var k uint64
			if k, err = u.uint(n); err == nil {
				v, ok := u.memo[int64(k)]
				if !ok {
					err = fmt.Errorf("memo %d unset", k)
					break
				}
				u.push(v)
			}
		case 'c': // GLOBAL
			var m, n string
			if m, err = u.line(); err == nil {
				if n, err = u.line(); err == nil {
					u.push(global{m, n})
				}
			}
		case 0x93: // STACK_GLOBAL
			var m, n any
			if n, err = u.pop(); err != nil {
				break
			}
			if m, err = u.pop(); err != nil {
				break
			}
			ms, ok1 := m.(string)
			ns, ok2 := n.(string)
			if !ok1 || !ok2 {
				err = errors.New("STACK_GLOBAL of non-strings")
				break
			}
			u.push(global{ms, ns})
		case 'R', 0x81: // REDUCE, NEWOBJ
			var args, f any
			if args, err = u.pop(); err != nil {
				break
			}
			if f, err = u.pop(); err != nil {
				break
			}
			var v any
			if v, err = call(f, args); err == nil {
				u.push(v)
			}
		case 'b': // BUILD: an object's state; the reader keeps none
			if _, err = u.pop(); err == nil {
				_, err = u.top()
			}
		case 'Q': // BINPERSID
			var pid any
			if pid, err = u.pop(); err == nil {
				var s *storage
				if s, err = persistent(pid); err == nil {
					u.push(s)
				}
			}
		default:
			err = fmt.Errorf("opcode 0x%02x is not supported", op)
		}
		if err != nil {
			return nil, err
		}
	}
	return nil, errShort
}

func (u *unpickler) setItems(t any, items []any) error {
	if len(items)%2 != 0 {
		return errors.New("odd number of dict items")
	}
	if _, ok := t.(mark); ok {
		return errors.New("unexpected mark")
	}
	if d, ok := t.(*dict); ok {
		for k := 0; k < len(items); k += 2 {
			d.set(items[k], items[k+1])
		}
	} // items of an inert object: ignored
	u.push(t)
	return nil
}

// long decodes LONG1's little-endian two's-complement bytes.
func long(b []byte) any {
	if len(b) == 0 {
		return int64(0)
	}
	if len(b) <= 8 {
		var v uint64
		for k := len(b) - 1; k >= 0; k-- {
			v = v<<8 | uint64(b[k])
		}
		shift := 64 - 8*uint(len(b))
		return int64(v<<shift) >> shift
	}
	be := make([]byte, len(b))
	for k := range b {
		be[len(b)-1-k] = b[k]
	}
	n := new(big.Int).SetBytes(be)
	if b[len(b)-1]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

// persistent resolves torch.save's persistent id
// ('storage', torch.<Type>Storage, key, location, numel).
func persistent(pid any) (*storage, error) {
	t, ok := pid.(tuple)
	if !ok || len(t) < 5 || t[0] != "storage" {
		return nil, fmt.Errorf("persistent id is %s: want ('storage', type, key, location, numel)", describe(pid))
	}
	g, ok1 := t[1].(global)
	key, ok2 := t[2].(string)
	numel, ok3 := t[4].(int64)
	if !ok1 || !ok2 || !ok3 || g.module != "torch" {
		return nil, fmt.Errorf("persistent id (%s, %s, %s, …): want ('storage', torch.<Type>Storage, key, location, numel)",
			describe(t[0]), describe(t[1]), describe(t[2]))
	}
	return &storage{class: g.name, key: key, numel: numel}, nil
}

// call is REDUCE and NEWOBJ: the few callables a state dict needs are
// evaluated; anything else becomes an inert object.
func call(f, args any) (any, error) {
	g, ok := f.(global)
	if !ok {
		return object{}, nil
	}
	a, _ := args.(tuple)
	switch g {
	case global{"collections", "OrderedDict"}, global{"builtins", "dict"}, global{"__builtin__", "dict"}:
		return &dict{}, nil
	case global{"torch._utils", "_rebuild_tensor_v2"}, global{"torch._utils", "_rebuild_tensor"}:
		if len(a) < 4 {
			return nil, fmt.Errorf("%s.%s: %d arguments", g.module, g.name, len(a))
		}
		s, ok := a[0].(*storage)
		off, ok2 := a[1].(int64)
		size, ok3 := ints(a[2])
		stride, ok4 := ints(a[3])
		if !ok || !ok2 || !ok3 || !ok4 {
			return nil, fmt.Errorf("%s.%s(%s, %s, %s, %s, …): want (storage, offset, size, stride, …)",
				g.module, g.name, describe(a[0]), describe(a[1]), describe(a[2]), describe(a[3]))
		}
		return &tensorRef{storage: s, offset: off, size: size, stride: stride}, nil
	case global{"torch._utils", "_rebuild_parameter"}, global{"torch._utils", "_rebuild_parameter_with_state"}:
		if len(a) > 0 {
			if t, ok := a[0].(*tensorRef); ok {
				return t, nil
			}
		}
		return nil, fmt.Errorf("%s.%s: no tensor", g.module, g.name)
	}
	return object{of: g}, nil
}

// ints reads a tuple of ints (a size or stride).
func ints(v any) ([]int64, bool) {
	t, ok := v.(tuple)
	if !ok {
		return nil, false
	}
	out := make([]int64, len(t))
	for k, x := range t {
		if out[k], ok = x.(int64); !ok {
			return nil, false
		}
	}
	return out, true
}
