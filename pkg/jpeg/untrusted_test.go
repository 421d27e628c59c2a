package jpeg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

// pngClaiming is a tiny PNG (one IHDR, one empty IDAT) whose header claims
// w×h pixels: a decompression bomb's header (case 9: a 76-byte file
// claiming 200000×200000 once made Go allocate until killed).
func pngClaiming(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(kind string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		crc := crc32.NewIEEE()
		crc.Write([]byte(kind))
		crc.Write(data)
		b.WriteString(kind)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// jpegClaiming is a real 64×48 JPEG whose frame header (SOF) is patched to
// claim w×h pixels (case 9: a 652-byte progressive JPEG claiming
// 65500×65500 made libjpeg allocate more than 3 GB).
func jpegClaiming(t *testing.T, w, h uint16) []byte {
	data := photo(t, 64, 48, false)
	for i := 2; i+9 < len(data); {
		if data[i] != 0xFF {
			t.Fatal("lost the marker chain")
		}
		marker := data[i+1]
		size := int(binary.BigEndian.Uint16(data[i+2:]))
		if marker == 0xC0 || marker == 0xC2 { // SOF0 or SOF2: precision, height, width
			binary.BigEndian.PutUint16(data[i+5:], h)
			binary.BigEndian.PutUint16(data[i+7:], w)
			return data
		}
		i += 2 + size
	}
	t.Fatal("no SOF marker")
	return nil
}

func TestUntrustedHeaders(t *testing.T) {
	bomb := pngClaiming(200000, 200000)
	if len(bomb) > 80 {
		t.Fatalf("the PNG is %d bytes", len(bomb))
	}
	if _, _, err := Size(bomb, MaxPixels); !errors.Is(err, ErrTooLarge) {
		t.Errorf("PNG claiming 200000×200000: Size err = %v, want ErrTooLarge", err)
	}
	// A caller that believes a smaller size is still refused: the decoder
	// reads the header itself.
	if _, _, err := Decode(Go, bomb, 10, 10, Box{W: 10, H: 10}, 0, 0, MaxPixels); !errors.Is(err, ErrTooLarge) {
		t.Errorf("PNG claiming 200000×200000: Decode err = %v, want ErrTooLarge", err)
	}
	huge := jpegClaiming(t, 65500, 65500)
	if _, _, err := Size(huge, MaxPixels); !errors.Is(err, ErrTooLarge) {
		t.Errorf("JPEG claiming 65500×65500: Size err = %v, want ErrTooLarge", err)
	}
	for _, dec := range []Decoder{Turbo, Go} {
		_, _, err := Decode(dec, huge, 64, 48, Box{W: 64, H: 48}, 0, 0, MaxPixels)
		if err == nil || !strings.Contains(err.Error(), "limit") {
			t.Errorf("%s: JPEG claiming 65500×65500 decoded as 64×48: err = %v, want the limit named", dec, err)
		}
	}
	// The limit is the caller's.
	ok := photo(t, 64, 48, false)
	if _, _, err := Size(ok, 64*48-1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("64×48 under a limit of %d pixels: err = %v", 64*48-1, err)
	}
	if _, _, err := Size(ok, 64*48); err != nil {
		t.Errorf("64×48 at a limit of %d pixels: %v", 64*48, err)
	}
}

// TestCorruptDataIsAnError (case 9): a JPEG whose entropy-coded data is
// damaged decodes, with libjpeg's warnings, to partly grey pixels; that is
// an error, not a silently wrong image.
func TestCorruptDataIsAnError(t *testing.T) {
	data := photo(t, 200, 150, false)
	// The scan starts after SOS (FF DA); damage bytes well inside it.
	sos := bytes.Index(data, []byte{0xFF, 0xDA})
	if sos < 0 {
		t.Fatal("no SOS")
	}
	bad := bytes.Clone(data)
	for i := sos + 40; i < sos+40+64 && i < len(bad)-4; i++ {
		bad[i] = 0xFF
		if i%2 == 1 {
			bad[i] = 0xD5 // an RST marker out of place
		}
	}
	_, _, err := Decode(Turbo, bad, 200, 150, Box{W: 200, H: 150}, 0, 0, MaxPixels)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("damaged scan: err = %v, want a corrupt-data error", err)
	}
	if _, _, err := Decode(Turbo, data, 200, 150, Box{W: 200, H: 150}, 0, 0, MaxPixels); err != nil {
		t.Errorf("undamaged: %v", err)
	}
}
