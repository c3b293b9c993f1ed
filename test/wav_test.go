package test

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
)

// wavAudio is the first channel of a 16-bit PCM WAV file.
type wavAudio struct {
	rate    int
	samples []float64
}

// readWAV reads a 16-bit PCM WAV file. A data chunk whose size was never
// finalised (0 or too large) is read to the end of the file.
func readWAV(path string) (wavAudio, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return wavAudio{}, err
	}
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return wavAudio{}, fmt.Errorf("%s: not a RIFF/WAVE file", path)
	}
	var rate, channels, bits int
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:off+8]))
		body := off + 8
		switch id {
		case "fmt ":
			if body+16 > len(b) {
				return wavAudio{}, fmt.Errorf("%s: short fmt chunk", path)
			}
			channels = int(binary.LittleEndian.Uint16(b[body+2:]))
			rate = int(binary.LittleEndian.Uint32(b[body+4:]))
			bits = int(binary.LittleEndian.Uint16(b[body+14:]))
		case "data":
			if bits != 16 || channels < 1 {
				return wavAudio{}, fmt.Errorf("%s: want 16-bit PCM, got %d bits, %d channels", path, bits, channels)
			}
			end := body + size
			if size == 0 || end > len(b) {
				end = len(b)
			}
			return wavAudio{rate: rate, samples: pcm16Channel0(b[body:end], channels)}, nil
		}
		off = body + size + size%2
	}
	return wavAudio{}, fmt.Errorf("%s: no data chunk", path)
}

func pcm16Channel0(data []byte, channels int) []float64 {
	frame := 2 * channels
	out := make([]float64, 0, len(data)/frame)
	for i := 0; i+2 <= len(data); i += frame {
		out = append(out, float64(int16(binary.LittleEndian.Uint16(data[i:]))))
	}
	return out
}

// rms returns the root mean square of x.
func rms(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	var s float64
	for _, v := range x {
		s += v * v
	}
	return math.Sqrt(s / float64(len(x)))
}
